"""pyserial URL handlers (pyserial looks up `<package>.protocol_<scheme>`); `import wizsock` registers this package."""
