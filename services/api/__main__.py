"""`python -m services.api` starts the gRPC api."""

from services.api.server import main

main()
