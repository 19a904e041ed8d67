"""The web layer: one package per area; views stay thin over the accounts domain."""
