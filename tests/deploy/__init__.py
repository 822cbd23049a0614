"""Tests of deploy/: the image's command runs, the manifests agree with the server."""
