"""What the relay serves over HTTP besides the upload doors: the API's reads, pages, media."""
