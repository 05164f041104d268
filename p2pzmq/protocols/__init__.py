"""Discovery protocols other than the original's: Kademlia's pure, sans-IO core lives here."""
