"""What the tests of scoring share."""
from apt_video.cli import main


# -- nothing lost, nothing wrong: the adversarial cases -------------------------------------------------
def score_cli(*args):
    return main(["score", *map(str, args), "--no-progress"])
