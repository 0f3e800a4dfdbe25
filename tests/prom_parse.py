"""Parse Prometheus text exposition with prometheus_client's own parser (tests/metrics.rs).

Reads the exposition on stdin and prints one JSON document: every metric family with its type,
help text and samples (name, labels, value). A text the parser refuses makes it exit non-zero
with the parser's error, so a malformed exposition fails the Rust test that runs this.
"""

import json
import math
import sys

from prometheus_client.parser import text_string_to_metric_families


def number(value):
    """JSON has no infinities or NaN: spell them as Prometheus does."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return value


def main():
    """Parse stdin and print the families as JSON."""
    families = []
    for family in text_string_to_metric_families(sys.stdin.read()):
        samples = [
            {"name": s.name, "labels": s.labels, "value": number(s.value)}
            for s in family.samples
        ]
        families.append(
            {
                "name": family.name,
                "type": family.type,
                "help": family.documentation,
                "samples": samples,
            }
        )
    json.dump(families, sys.stdout)


if __name__ == "__main__":
    main()
