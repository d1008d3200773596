"""One module per page (wall, desk, street/community/grid, case, supervisor, evaluation)."""
