"""The workspace's pure domain: labels, case file views, actions, sessions, référentiel search."""
