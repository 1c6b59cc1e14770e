"""``regio bench loss``: what a subscriber really receives when its link loses packets."""
