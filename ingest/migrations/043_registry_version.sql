-- A counter bumped by every statement that changes what `ingest.registry.load_fleet` reads,
-- so a service polls one row instead of reloading 250,000 devices to see that nothing changed.
-- Care centres count only for their identity and position: duty switches are read separately
-- (`load_centers_on_duty`) and must not make alerting reload the whole registry.
CREATE TABLE IF NOT EXISTS registry_version (
    id      boolean PRIMARY KEY DEFAULT true CHECK (id),
    version bigint NOT NULL
);
INSERT INTO registry_version (id, version) VALUES (true, 1) ON CONFLICT (id) DO NOTHING;

CREATE OR REPLACE FUNCTION registry_version_bump() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    UPDATE registry_version SET version = version + 1 WHERE id;
    RETURN NULL;
END
$fn$;

DROP TRIGGER IF EXISTS registry_version_elders ON elders;
CREATE TRIGGER registry_version_elders AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON elders
    FOR EACH STATEMENT EXECUTE FUNCTION registry_version_bump();
DROP TRIGGER IF EXISTS registry_version_families ON families;
CREATE TRIGGER registry_version_families AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON families
    FOR EACH STATEMENT EXECUTE FUNCTION registry_version_bump();
DROP TRIGGER IF EXISTS registry_version_elder_families ON elder_families;
CREATE TRIGGER registry_version_elder_families
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON elder_families
    FOR EACH STATEMENT EXECUTE FUNCTION registry_version_bump();
DROP TRIGGER IF EXISTS registry_version_devices ON devices;
CREATE TRIGGER registry_version_devices AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON devices
    FOR EACH STATEMENT EXECUTE FUNCTION registry_version_bump();
DROP TRIGGER IF EXISTS registry_version_centers ON care_centers;
CREATE TRIGGER registry_version_centers
    AFTER INSERT OR DELETE OR TRUNCATE OR UPDATE OF id, name, lat, lon, capacity, coverage_km2
    ON care_centers FOR EACH STATEMENT EXECUTE FUNCTION registry_version_bump();
