"""Files the README's "Bring your own model" section uses: an architecture file and the script that makes an
example model and its data to upload."""
