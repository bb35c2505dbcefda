from flask import Blueprint
bp = Blueprint("patient", __name__)
