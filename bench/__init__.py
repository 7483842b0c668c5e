"""``aiinfra bench``: bounded load against a server, and side-by-side comparisons."""
