-- Plain VACUUM lets reads and writes go on.
VACUUM orders;
