"""GridWall's composition root: settings, the one place the running parts are built, and the server."""
