def do_stuff(): return 42
