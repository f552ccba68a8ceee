public enum RaftSimPlaceholder {}
