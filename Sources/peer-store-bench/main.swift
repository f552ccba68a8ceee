import PeerStore
