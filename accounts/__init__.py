"""The domain: contracts, users, migration rules, security features. No request objects here."""
