"""``regio bench trunk``: loss-aware trunk paths across three namespace hosts."""
