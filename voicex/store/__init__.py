"""MongoDB: the database handle, its collections' writes, retries, leases and usage. The ground floor."""
