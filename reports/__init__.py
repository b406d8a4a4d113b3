"""The HTML report (templates, plots): renders what fit computed; built in a later stage."""
