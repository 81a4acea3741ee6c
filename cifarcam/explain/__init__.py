"""Why a model decided: class activation maps, how faithful and concentrated they are, which test
images to show, and explaining your own images."""
