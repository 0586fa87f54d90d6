"""One module per on-disk dataset layout; each turns a root folder into `Video`s."""
