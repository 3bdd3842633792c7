import os
import sys

# busio/digitalio stand-ins for the board (Adafruit-Blinka's own refuse a PC's UART and
# pins); they go before site-packages, where Blinka installs modules of the same names
SHIMS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "shims")
if SHIMS not in sys.path:
    sys.path.insert(0, SHIMS)
