/// What `LocalAnswers` needs of the bridge: the pipeline to accept and end the command, the store and settings the
/// charge duration is kept in, and the meters the history is read from.
protocol LocalAnswerHost: CommandHost, LiveHost {
    var commands: CommandPipeline { get }
    var live: LiveState { get }
    var store: any StatePort { get }
}
