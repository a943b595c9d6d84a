-- Home hubs get MQTT accounts of their own (`hub_<elder id>`): the broker's ACL lets one
-- publish only on the topics of the devices registered to that elder.
ALTER TABLE mqtt_accounts DROP CONSTRAINT IF EXISTS mqtt_accounts_kind_check;
ALTER TABLE mqtt_accounts ADD CONSTRAINT mqtt_accounts_kind_check
    CHECK (kind IN ('device', 'service', 'center', 'hub'));
