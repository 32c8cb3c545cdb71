"""Experiments: endpoints over several model versions with A/B splits, canaries, shadow
traffic and bandits, and the statistics to judge them."""
