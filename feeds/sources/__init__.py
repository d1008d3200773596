"""Feed sources: generators and replays that produce lifecycle commands (simulator, replays)."""
