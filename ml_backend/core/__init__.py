"""The active-learning loop with no Label Studio inside: embed, store, fit, select."""
