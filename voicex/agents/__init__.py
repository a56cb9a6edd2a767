"""Agent documents: the request shapes, the rules that make an agent valid, and the stored-agent migration."""
