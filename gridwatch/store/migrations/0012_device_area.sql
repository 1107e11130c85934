-- A device's area: the place its customers know (a ward, a street, "Phường Linh Trung"),
-- which notices name instead of a device id (issue 15). Optional: '' where the topology
-- gives none, and a notice then takes the nearest area up the tree.
ALTER TABLE devices
    ADD COLUMN area text NOT NULL DEFAULT '' CHECK (length(area) <= 256);
