# Report plots and tables.


def report_targets():
    return []
