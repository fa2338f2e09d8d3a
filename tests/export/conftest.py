"""Tests of the USB export and the storage rule, and the torture tests: power cuts, full disks, yanked
sticks, hostile files (their helpers are in tests/helpers/torture/)."""
