/* plugins/mintnet/mintnet_timing.c: placeholder */
int main(void) { return 0; }
