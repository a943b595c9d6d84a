-- Registry of contract §3: care centres, elders, families and devices.
CREATE TABLE IF NOT EXISTS care_centers (
    id            text PRIMARY KEY,
    name          text NOT NULL,
    lat           double precision NOT NULL,
    lon           double precision NOT NULL,
    capacity      integer NOT NULL DEFAULT 3 CHECK (capacity >= 0),
    coverage_km2  double precision NOT NULL DEFAULT 1.0 CHECK (coverage_km2 > 0),
    on_duty       boolean NOT NULL DEFAULT true,
    updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS elders (
    id             text PRIMARY KEY,
    name           text NOT NULL,
    home_lat       double precision NOT NULL,
    home_lon       double precision NOT NULL,
    safe_radius_m  double precision NOT NULL DEFAULT 300 CHECK (safe_radius_m > 0),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS families (
    id    text PRIMARY KEY,
    name  text NOT NULL
);

CREATE TABLE IF NOT EXISTS elder_families (
    elder_id   text NOT NULL REFERENCES elders (id) ON DELETE CASCADE,
    family_id  text NOT NULL REFERENCES families (id) ON DELETE CASCADE,
    PRIMARY KEY (elder_id, family_id)
);
CREATE INDEX IF NOT EXISTS elder_families_family ON elder_families (family_id);

CREATE TABLE IF NOT EXISTS devices (
    id           text PRIMARY KEY CHECK (id ~ '^[a-z0-9][a-z0-9-]{2,63}$'),
    type         text NOT NULL CHECK (type IN ('button', 'smoke', 'band', 'cane')),
    elder_id     text NOT NULL REFERENCES elders (id),
    heartbeat_s  integer NOT NULL DEFAULT 300 CHECK (heartbeat_s > 0),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS devices_elder ON devices (elder_id);
