# tests/driver.mk
