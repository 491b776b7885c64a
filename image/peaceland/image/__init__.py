"""The platform's OCI image, built without a Docker engine (``peaceland.image.build``)."""
