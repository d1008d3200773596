"""GridWall's pure domain core: geography, codes, the case lifecycle (no Flask, Dash or SQL)."""
