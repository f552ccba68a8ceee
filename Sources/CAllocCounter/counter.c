int peer_alloc_placeholder;
