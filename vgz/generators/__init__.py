"""Generator components: mapping networks, synthesis networks, motion modules."""
