"""The appliance as a web page: live screen, LEDs as lamps, a button, recent history (docs/browser.md).

An adapter like the hardware ones: it watches the display and LEDs and presses through the same
``on_press`` the physical button calls. Standard library only (plus cv2, already installed, for PNG).
"""
