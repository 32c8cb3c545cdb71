"""The console's pages that show one model or one endpoint, and the actions they offer."""
