"""The inshape API: the ModelUpdatePolicy spec and status, the names and the run result the
update Job and the operator share. Both stand on this package; neither imports the other."""
