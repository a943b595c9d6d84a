-- Optional responder fields of contract §3: how to reach an elder, get in, and whom to call.
-- Contact details belong to the person; relation, key-holding and availability to the link.
ALTER TABLE elders ADD COLUMN IF NOT EXISTS address text;
ALTER TABLE elders ADD COLUMN IF NOT EXISTS phone text;
ALTER TABLE elders ADD COLUMN IF NOT EXISTS language text;
ALTER TABLE elders ADD COLUMN IF NOT EXISTS notes text;
ALTER TABLE elders ADD COLUMN IF NOT EXISTS access_code text;   -- key safe or door code

ALTER TABLE families ADD COLUMN IF NOT EXISTS phone text;
ALTER TABLE families ADD COLUMN IF NOT EXISTS email text;

ALTER TABLE elder_families ADD COLUMN IF NOT EXISTS relation text;
ALTER TABLE elder_families ADD COLUMN IF NOT EXISTS key_holder boolean NOT NULL DEFAULT false;
-- Daily windows in local time, [{"from": "HH:MM", "to": "HH:MM"}]; empty means at any time.
ALTER TABLE elder_families ADD COLUMN IF NOT EXISTS available jsonb NOT NULL DEFAULT '[]';

CREATE INDEX IF NOT EXISTS elders_name ON elders (name);
