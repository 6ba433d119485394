"""The API's endpoints, one router per concern, all under ``/api/v1``."""
