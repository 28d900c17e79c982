"""PruneScope's documentation: the lecturer's guide, the pictures it shows, and the script that takes them."""
