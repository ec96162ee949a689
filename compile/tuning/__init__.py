"""MetaSchedule tuning: the tuner, its databases and their selection for a build, measurement."""
