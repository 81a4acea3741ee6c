"""The data set: fetching a source, reading the official archives or an image folder, and the
prepared uint8 splits (train, validation, test; RGB and grayscale)."""
