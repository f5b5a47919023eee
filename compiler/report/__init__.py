"""Reports: `report.json` for machines (`data`), `report.html` for people (`html`), an energy
table for the terminal; `format` holds what all three share."""
from .data import build_report_dict, energy_table, print_energy_table, write_report
from .format import SECTIONS, format_energy, format_time

__all__ = ["SECTIONS", "build_report_dict", "energy_table", "format_energy", "format_time", "print_energy_table", "write_report"]
