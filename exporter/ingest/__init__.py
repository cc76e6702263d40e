"""The pollers of one tenant (node_exporter's "collectors"): audit log, groups, administrative
units, critical groups' processing status. Each runs on its own interval; one failing never
stops the others."""
