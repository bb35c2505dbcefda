"""Nurse pages (placeholder routes filled in below)."""
from flask import Blueprint
bp = Blueprint("nurse", __name__, url_prefix="/nurse")
