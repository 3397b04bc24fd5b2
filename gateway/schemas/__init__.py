"""The REST bodies of the gateway and their proto mappings, one module per resource."""
