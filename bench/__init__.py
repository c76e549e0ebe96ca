"""The benchmark suite: load scenarios against a real server, references, peers, report and gate."""
