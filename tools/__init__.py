"""Course tooling for authors and instructors: chapter generator, grader, timing table, offline book assets."""
